"""The HTTP layer: parse the request, call the domain, shape the answer. No SQL here."""
