package hosts

// Halt ends the beats without deleting the heartbeat, as a killed process
// would leave it.
func (b *Beater) Halt() {
	if b.cancel != nil {
		b.cancel()
		<-b.done
		b.cancel = nil
	}
}
