"""Pusher of blessed models into versioned, atomically published serving folders."""
