"""Feature extractors: image -> vector. Nothing here knows about stores or HTTP."""
