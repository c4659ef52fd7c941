// Package headers is kretry's header contract: the kretry-* record headers
// that a record carries from its first failure through the retry tiers to
// the DLQ, and back when it is replayed.
//
// Encode writes a record's Metadata as the Header* headers (version 1),
// replacing every kretry header and keeping the user's headers in order.
// Decode is strict: a bad, missing or repeated header is a *HeaderError
// naming the header, never a zero value. Reason says why a record is in the
// DLQ.
package headers
