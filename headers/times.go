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
// without time.Date: Decode reads five times per record.
func timeFields[S string | []byte](v S) (sec, nsec int64, ok bool) {
	if len(v) != len(TimeLayout) || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' ||
		v[16] != ':' || v[19] != '.' || v[23] != 'Z' {
		return 0, 0, false
	}
	// Every other byte is a digit: c-'0' wraps to above 9 for anything else.
	d := func(i int) int { return int(v[i] - '0') }
	for _, i := range [...]int{0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22} {
		if v[i]-'0' > 9 {
			return 0, 0, false
		}
	}
	y, mo, dd := d(0)*1000+d(1)*100+d(2)*10+d(3), d(5)*10+d(6), d(8)*10+d(9)
	h, mi, s, ms := d(11)*10+d(12), d(14)*10+d(15), d(17)*10+d(18), d(20)*100+d(21)*10+d(22)
	if mo < 1 || mo > 12 || dd < 1 || dd > daysIn(mo, y) || h > 23 || mi > 59 || s > 59 {
		return 0, 0, false
	}
	return daysSinceEpoch(y, mo, dd)*86400 + int64(h*3600+mi*60+s), int64(ms) * int64(time.Millisecond), true
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
