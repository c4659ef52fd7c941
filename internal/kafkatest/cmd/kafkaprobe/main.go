// Command kafkaprobe serves scripts/kafka/kafka.sh: it picks free local ports
// and checks that a broker answers a real metadata request.
//
//	kafkaprobe ports N                        print N free TCP ports on 127.0.0.1
//	kafkaprobe free PORT                      exit 0 if PORT is free on 127.0.0.1
//	kafkaprobe ping [-timeout D] ADDR[,ADDR]  exit 0 once the broker answers
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kretry/kretry/internal/kafkatest"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "ports":
		if len(os.Args) != 3 {
			usage()
		}
		n, err := strconv.Atoi(os.Args[2])
		if err != nil || n < 1 {
			usage()
		}
		if err := ports(n); err != nil {
			fmt.Fprintln(os.Stderr, "kafkaprobe:", err)
			os.Exit(1)
		}
	case "free":
		if len(os.Args) != 3 {
			usage()
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Args[2]))
		if err != nil {
			os.Exit(1)
		}
		l.Close()
	case "ping":
		fs := flag.NewFlagSet("ping", flag.ExitOnError)
		timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
		fs.Parse(os.Args[2:])
		if fs.NArg() != 1 {
			usage()
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		info, err := kafkatest.Probe(ctx, strings.Split(fs.Arg(0), ","))
		if err != nil {
			fmt.Fprintf(os.Stderr, "kafkaprobe: %s does not answer: %v\n", fs.Arg(0), err)
			os.Exit(1)
		}
		fmt.Printf("brokers=%s version=%s\n", strings.Join(info.Brokers, ","), info.Version)
	default:
		usage()
	}
}

// ports holds all listeners open until every port is chosen, so the N ports differ.
func ports(n int) error {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		ls = append(ls, l)
		fmt.Println(l.Addr().(*net.TCPAddr).Port)
	}
	return nil
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kafkaprobe ports N | kafkaprobe free PORT | kafkaprobe ping [-timeout D] ADDR[,ADDR...]")
	os.Exit(2)
}
