"""Model routing: pick the model a request needs, cheap first (a learned router scores the
prompt; a cascade checks the cheap answer and escalates), before spill-over picks where it runs."""
