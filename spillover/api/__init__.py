"""The ingress's HTTP surfaces, one module each: OpenAI's API, operations, admin (each admin
router lives with what it administers), and the error envelope every failure leaves in."""
