"""The demo city (central Lisbon shops, fences and offers) and its simulated foot traffic. It lives above the API
because the command line that loads it also starts the server."""
