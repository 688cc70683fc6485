"""The command line, `python -m autotag ...`: each command parses its arguments and calls
one library function; bad input exits with status 2 and one message."""
