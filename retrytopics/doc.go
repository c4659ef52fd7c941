// Package retrytopics holds kretry's retry ladder (Ladder, Tier), the naming of
// its tier and DLQ topics, the header contract v1 that a record carries across
// hops (the Header* constants, Metadata, Encode, Decode), and the Relay that
// re-feeds a retry-tier record to its main topic when it is due.
package retrytopics
