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

// PretendProcess makes this Beater act as another process on another
// machine: tests run two replicators in one process.
func (b *Beater) PretendProcess(instance, machine string) {
	b.instance, b.machine = instance, machine
}
