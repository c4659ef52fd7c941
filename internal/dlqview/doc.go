// Package dlqview shows DLQ records as `kretry dlq` prints them: the ls
// table (Table), the full record of show (WriteRecord), and the JSON forms of
// a record and of stats (Record, Stats). Everything taken from a record is
// escaped with safetext, so that a record cannot drive the terminal.
package dlqview
