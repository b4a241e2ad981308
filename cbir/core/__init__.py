"""The ground floor: errors, configuration and progress reporting; imports nothing else of cbir."""
