"""Pages that belong to no feature: home, health, readiness, language choice."""
