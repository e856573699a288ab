"""Developer tools (test and benchmark support). The service never imports them."""
