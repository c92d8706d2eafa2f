// Package control is the node's local control API and its Go client.
//
// The control API is how applications that are not plugins — scripts,
// existing services, the pycomms-host CLI — talk to a running node: call a
// service, send a one-way message (to any node that serves it, or to one
// named node of the mesh), publish, subscribe to a topic pattern, and
// inspect plugins, mesh peers, health and versions. It is plain HTTP/1.1
// with JSON and raw byte bodies on the node's control address (DefaultAddr
// unless configured), so curl is a complete client; API.md in this directory
// is the reference for every route, the error body and the status mapping.
//
// The server side is a Server wrapping a Backend (the node). It is built on
// net/http from the standard library: the API is small, HTTP/1.1 streaming
// with per-message flushes is all a subscription needs, and the standard
// server gives graceful shutdown and connection hygiene without another
// dependency. The client side is a Client that turns every failure into a
// *message.Error carrying an abi.Status, so callers (the CLI's exit codes in
// particular) classify errors by status and never by parsing text.
//
// Errors on the wire carry the abi.Status name; the HTTP status code is
// chosen for humans and generic HTTP tooling (see HTTPStatus), and the client
// maps back from the status name only, because several statuses share an
// HTTP code.
//
// The server bounds what clients can hold (limits.go, API.md "Limits"): the
// time to send a request and to take each write of a response, the number
// of connections (over it a connection is answered 503 busy and closed, not
// left in the backlog) and the request-body bytes held across all requests
// (a node-wide budget; over it, 503 busy). Each limit is a constant with an
// Option.
//
// The API listens on loopback or a unix socket by default. With a token
// (WithToken; the node's control.token_file, required by the node for any
// other address) every request but the health probes needs
// "Authorization: Bearer TOKEN", compared in constant time and never
// logged; see tokenExempt, the one place that decides which paths are
// exempt. To keep web pages opened in a local browser from using it, the
// server refuses requests that carry an Origin header (cross-site request
// forgery) and requests whose Host is a name it was not told about (DNS
// rebinding); see WithAllowedHosts.
package control
