"""The scoring service (``aim serve``): arms, models, online features, impression log, HTTP app."""
