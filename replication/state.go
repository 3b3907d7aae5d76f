package replication

import (
	"time"
)

// State is where a tenant stands. The same words are used in the logs,
// `ls`, `inspect`, the terminal UI and the metrics.
type State string

// The tenant states. Healthy ones are replicating, sleeping and leased
// elsewhere; the others need the operator or are waiting for S3.
const (
	StateStarting    State = "starting"              // being checked and opened
	StateReplicating State = "replicating"           // Litestream has it open; changes go to S3 within a second or two
	StateSleeping    State = "sleeping"              // idle: closed, watched; a change wakes it
	StateLeased      State = "leased elsewhere"      // a live host holds its claim
	StateLeaseLost   State = "lease lost (retrying)" // this host cannot prove it may write: S3 failing, or the claim was taken
	StateSyncFailing State = "sync failing"          // open, the host may write, but its last sync failed (local or upload): see the reason and since
	StateDiverged    State = "diverged"              // the local file's history and the replica's differ: nothing is uploaded
	StateMissing     State = "missing"               // the file is gone; its claim was released
	StateFailed      State = "failed"                // cannot be opened, written or locked: see the reason
	StateStopped     State = "stopped"               // not replicated by this process
)

// States lists every state, the most alarming first.
var States = []State{StateFailed, StateDiverged, StateLeaseLost, StateSyncFailing, StateMissing, StateStarting, StateLeased, StateReplicating, StateSleeping, StateStopped}

// Healthy reports a state that needs nobody's attention.
func (s State) Healthy() bool {
	switch s {
	case StateReplicating, StateSleeping, StateLeased:
		return true
	}
	return false
}

// TenantStatus is what the engine knows of one tenant.
type TenantStatus struct {
	Tenant  string `json:"tenant"`
	Path    string `json:"path"`
	Replica string `json:"replica"`
	State   State  `json:"state"`
	// Reason says why, for every state but replicating and sleeping.
	Reason string `json:"reason,omitempty"`
	// Since is when the state was entered; for sync failing, when the
	// syncs began failing.
	Since time.Time `json:"since"`
	// Holder is the host holding the claim when leased elsewhere.
	Holder         string    `json:"holder,omitempty"`
	LocalTXID      uint64    `json:"local_txid"`
	ReplicatedTXID uint64    `json:"replicated_txid"`
	LastSync       time.Time `json:"last_sync,omitzero"`
	// Lag is now − the time of the oldest local change not yet in S3; 0
	// when in sync.
	Lag time.Duration `json:"lag_ns"`
	// SyncErrors counts failed syncs since the process started: uploads of
	// a change that failed or were refused, and Litestream's local syncs
	// seen failing.
	SyncErrors    int64 `json:"sync_errors"`
	UploadedBytes int64 `json:"uploaded_bytes"`
	// WALBytes is the size of the database's -wal file when the engine
	// last looked at it with stat (every sweep, 10 s by default); 0 when
	// there is none. The database is never opened for it.
	WALBytes int64  `json:"wal_bytes"`
	Bucket   string `json:"bucket"`
	Endpoint string `json:"endpoint,omitempty"`

	// UploadDone and UploadTotal are what the tenant's big uploads in
	// flight (a first snapshot) have sent of their size; UploadTotal is 0
	// when a stream's size is not known yet. Reason says it in words.
	UploadDone  int64 `json:"upload_done_bytes,omitempty"`
	UploadTotal int64 `json:"upload_total_bytes,omitempty"`

	// VerifiedAt and Verdict are the last continuous verification's
	// (-verify-every): verify's verdict word; VerifyFailures counts the
	// failed verdicts since the process started.
	VerifiedAt     time.Time `json:"verified_at,omitzero"`
	Verdict        string    `json:"verdict,omitempty"`
	VerifyFailures int64     `json:"verify_failures,omitempty"`
}

// HeartbeatStatus is one bucket's heartbeat as this process keeps it.
type HeartbeatStatus struct {
	Bucket   string    `json:"bucket"`
	Endpoint string    `json:"endpoint,omitempty"`
	Host     string    `json:"host"`
	LastBeat time.Time `json:"last_beat,omitzero"` // when the last successful beat was sent
	Fenced   bool      `json:"fenced"`             // uploads paused: the heartbeat is failing
	Error    string    `json:"error,omitempty"`    // the last beat's error, if it failed
}
