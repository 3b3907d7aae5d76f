package fleet

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

// Findings lists the naming problems visible in a fleet view: local files
// that are invalid, fall back to "default" or share a prefix, and S3
// prefixes with invalid names or differing from another only in case.
// conn, when set, gives a tenant's S3 URL.
func Findings(v *View, conn func(tenant string) string) []Finding {
	var out []Finding
	for _, r := range v.Rows {
		if l := r.Local; l != nil {
			kind, note := EntryFinding(l.Entry), l.Note
			if r.Status == StatusInvalid && !Blocks(kind) {
				// Join found two databases on one prefix.
				kind, note = FindingCollision, r.Note
			}
			if kind != "" {
				out = append(out, Finding{Side: "local", Kind: kind, Tenant: l.Name, Path: l.Path, Note: note})
			}
			continue
		}
		if rm := r.Remote; rm != nil && r.Status == StatusInvalid {
			// A valid name is invalid here only as one of two spellings.
			kind := FindingInvalid
			if ValidateName(rm.Name) == nil {
				kind = FindingCollision
			}
			url := ""
			if conn != nil {
				url = conn(rm.Name)
			}
			out = append(out, Finding{Side: "S3", Kind: kind, Tenant: rm.Name, Path: url, Note: r.Note})
		}
	}
	return out
}
