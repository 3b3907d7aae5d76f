package replication

// SetPartSize sets the size of upload parts (S3's smallest is 5 MiB), so
// that a test's tens of megabytes go up in several parts; it returns what
// restores it.
func SetPartSize(n int) (restore func()) {
	old := partSize
	partSize = n
	return func() { partSize = old }
}

// SetPartSlots sets how many parts the process sends at once; it returns
// what restores it.
func SetPartSlots(n int) (restore func()) {
	old := partSlots
	partSlots = make(chan struct{}, n)
	return func() { partSlots = old }
}

// ResetLink forgets what the process measured of its link to S3, as a new
// process would know nothing of it.
func ResetLink() {
	link.mu.Lock()
	defer link.mu.Unlock()
	link.rate = 0
}
