"""A sandboxed sprite's only way out: a policy-enforcing egress proxy and DNS responder
run by the server, reached through sockets the in-sprite bridge hands over."""
