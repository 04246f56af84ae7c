"""One client per external system; a hook knows its protocol, not the release."""
