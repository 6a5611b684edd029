"""Department tools that routed requests are delivered into."""
