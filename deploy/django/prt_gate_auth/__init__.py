"""prt-gate adapter for Django: trust identity only from a verified X-Prt-Assertion."""
