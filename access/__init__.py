"""Who may call: API keys, the authenticate stage, and the admin API's authorisation."""
