"""The B2BUA: one tracked call from a carrier, routed to the customer's SIP client."""
