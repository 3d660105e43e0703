"""ActionCable channel classes (the cable arrives with issue 3)."""
