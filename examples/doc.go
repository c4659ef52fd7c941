// Package examples holds runnable programs that use kretry, one per folder.
package examples
