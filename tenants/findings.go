package tenants

// The kinds of naming problem: the one rule `litefleet validate` and the
// terminal UI's validate screen apply.
const (
	FindingInvalid   = "invalid"   // not a tenant name
	FindingCollision = "collision" // shares a prefix with another database or spelling
	FindingFallback  = "fallback"  // no GUID and no explicit name: "default"
)

// Finding is one naming problem.
type Finding struct {
	Side   string // "local" or "S3"
	Kind   string // FindingInvalid, FindingCollision or FindingFallback
	Tenant string // untrusted when Side is "S3": print with untrusted.Printable
	Path   string // local file, or the S3 URL
	Note   string
}

// EntryFinding is the naming problem of one local database by its own
// verdict, "" when it has none.
func EntryFinding(e Entry) string {
	switch e.Verdict {
	case VerdictInvalid:
		return FindingInvalid
	case VerdictCollision:
		return FindingCollision
	case VerdictFallback:
		return FindingFallback
	}
	return ""
}

// Blocks reports whether a finding of this kind keeps a database from
// being replicated as named (a fallback name replicates, under "default").
func Blocks(kind string) bool { return kind == FindingInvalid || kind == FindingCollision }
