"""Architecture search: gates, GRDA, candidate pools and the search stages."""
