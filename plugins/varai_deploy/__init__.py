"""varai-deploy: the library behind the VarAI release and operations DAGs."""
