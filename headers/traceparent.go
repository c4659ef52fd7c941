package headers

// ValidTraceParent reports whether v is a W3C traceparent as kretry writes
// it: version 00, a 32-digit trace id and a 16-digit span id, neither all
// zeros, and 2 digits of flags, in lower-case hex.
func ValidTraceParent(v string) bool { return validTraceParent(v) }

// validTraceParent is ValidTraceParent of a string or, for ReadBrief, of a
// header's value as it is.
func validTraceParent[S string | []byte](v S) bool {
	if len(v) != 55 || v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return false
	}
	hex := func(from, to int) (ok, nonZero bool) {
		for i := from; i < to; i++ {
			c := v[i]
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false, false
			}
			nonZero = nonZero || c != '0'
		}
		return true, nonZero
	}
	traceOK, traceNZ := hex(3, 35)
	spanOK, spanNZ := hex(36, 52)
	flagsOK, _ := hex(53, 55)
	return traceOK && traceNZ && spanOK && spanNZ && flagsOK
}
