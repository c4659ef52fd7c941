// Command kretry is kretry's CLI: config checks, topic provisioning, the
// standalone relay, DLQ tools, an embedded broker and a demo.
//
// Exit status: 0 on success, 1 on failure (a bad config included), 2 on bad
// usage (an unknown command or flag, a bad flag value), 3 from
// "topics plan --exit-code" when changes are pending.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
