"""The dashboard: the live request feed, the JSON API the page reads and the Try-it call."""
