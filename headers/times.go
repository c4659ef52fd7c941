package headers

import "time"

// appendTime appends t as FormatTime writes it, without time.Format's
// layout interpretation (Encode writes five times per record).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	y, mo, d := t.Date()
	if y < 0 || y > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	h, mi, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = append(b, byte('0'+y/1000), byte('0'+y/100%10), byte('0'+y/10%10), byte('0'+y%10), '-')
	b = append(b, byte('0'+int(mo)/10), byte('0'+int(mo)%10), '-', byte('0'+d/10), byte('0'+d%10), 'T')
	b = append(b, byte('0'+h/10), byte('0'+h%10), ':', byte('0'+mi/10), byte('0'+mi%10), ':')
	b = append(b, byte('0'+sec/10), byte('0'+sec%10), '.', byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z')
	return b
}

// parseTime reads a time in exactly the form FormatTime writes; false for
// anything else (including out-of-range fields), which time.Parse then
// explains.
func parseTime(v string) (time.Time, bool) {
	sec, nsec, ok := timeFields(v)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(sec, nsec).UTC(), true
}

// timeFields reads v as parseTime does, as Unix seconds and nanoseconds,
// without time.Date: Decode reads five times per record. It checks the 24
// bytes as three words, the 17 digits and 7 separators of each at once.
func timeFields[S string | []byte](v S) (sec, nsec int64, ok bool) {
	return timeFieldsOn(v, nil)
}

// aDay is the date of the last time timeFieldsOn read (its first ten
// bytes) and its day number: the times of one record nearly always share
// their date. The zero aDay holds none.
type aDay struct {
	date, dd uint64 // the first 8 bytes of the time, the 2 after them
	days     int64
}

// timeFieldsOn is timeFields, reusing and keeping the day number of a date
// in day when it is not nil.
func timeFieldsOn[S string | []byte](v S, day *aDay) (sec, nsec int64, ok bool) {
	if len(v) != len(TimeLayout) {
		return 0, 0, false
	}
	// By word: where the digits are, and what the other bytes must be
	// ("2006-01-", "02T15:04", ":05.000Z").
	const (
		digits0, seps0 = 0x00ff_ff00_ffff_ffff, 0x2d00_002d_0000_0000
		digits1, seps1 = 0xffff_00ff_ff00_ffff, 0x0000_3a00_0054_0000
		digits2, seps2 = 0x00ff_ffff_00ff_ff00, 0x5a00_0000_2e00_003a
		zeros, highs   = 0x3030_3030_3030_3030, 0xf0f0_f0f0_f0f0_f0f0
		sixes          = 0x0606_0606_0606_0606
	)
	w0, w1, w2 := word(v, 0), word(v, 8), word(v, 16)
	if w0&^digits0 != seps0 || w1&^digits1 != seps1 || w2&^digits2 != seps2 {
		return 0, 0, false
	}
	// A digit byte XOR '0' is 0 to 9: no high bits, and none once 6 is
	// added (no carry: each byte is at most 0x0f then).
	d0, d1, d2 := (w0^zeros)&digits0, (w1^zeros)&digits1, (w2^zeros)&digits2
	if (d0|d1|d2)&highs != 0 || ((d0+sixes&digits0)|(d1+sixes&digits1)|(d2+sixes&digits2))&highs != 0 {
		return 0, 0, false
	}
	b := func(w uint64, i int) int { return int(w >> (8 * i) & 0xff) }
	var days int64
	if day != nil && day.date == w0 && day.dd == w1&0xffff {
		days = day.days
	} else {
		y, mo, dd := b(d0, 0)*1000+b(d0, 1)*100+b(d0, 2)*10+b(d0, 3), b(d0, 5)*10+b(d0, 6), b(d1, 0)*10+b(d1, 1)
		if mo < 1 || mo > 12 || dd < 1 || dd > daysIn(mo, y) {
			return 0, 0, false
		}
		days = daysSinceEpoch(y, mo, dd)
		if day != nil {
			*day = aDay{date: w0, dd: w1 & 0xffff, days: days}
		}
	}
	h, mi, s, ms := b(d1, 3)*10+b(d1, 4), b(d1, 6)*10+b(d1, 7), b(d2, 1)*10+b(d2, 2), b(d2, 4)*100+b(d2, 5)*10+b(d2, 6)
	if h > 23 || mi > 59 || s > 59 {
		return 0, 0, false
	}
	return days*86400 + int64(h*3600+mi*60+s), int64(ms) * int64(time.Millisecond), true
}

// word returns the 8 bytes of v from i, little-endian.
func word[S string | []byte](v S, i int) uint64 {
	v = v[i : i+8]
	return uint64(v[0]) | uint64(v[1])<<8 | uint64(v[2])<<16 | uint64(v[3])<<24 |
		uint64(v[4])<<32 | uint64(v[5])<<40 | uint64(v[6])<<48 | uint64(v[7])<<56
}

// daysIn is the number of days of month mo (1 to 12) of year y.
func daysIn(mo, y int) int {
	switch mo {
	case 2:
		if y%4 == 0 && (y%100 != 0 || y%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysSinceEpoch is the number of days from 1970-01-01 to y-mo-d of the
// proleptic Gregorian calendar, for y from 0 to 9999 (Hinnant's
// days_from_civil).
func daysSinceEpoch(y, mo, d int) int64 {
	if mo <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	m := mo + 9
	if mo > 2 {
		m = mo - 3
	}
	doy := (153*m+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
