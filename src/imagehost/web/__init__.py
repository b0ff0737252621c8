"""What every feature shares on the HTTP side: languages, representations, errors, request safety."""
