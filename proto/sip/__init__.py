"""The SIP grammar every service agrees on: URIs (RFC 3261 §19.1, RFC 3966) and the rules
for a SIP client target. Pure code: the SIP core (services/signaling/sip) parses with it,
config validates the targets users provision with it, so both accept the same URIs."""
