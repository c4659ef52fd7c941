// Command kretry is kretry's CLI: config checks, topic provisioning, the
// standalone relay, DLQ tools, an embedded broker and a demo.
package main

func main() {}
