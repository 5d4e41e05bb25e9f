"""Real-browser tests: the example app in Debian's Chromium, driven by Playwright."""
