# Step 4 of dag_scripts_app.py (its own process): "publishes" the summary it is given as arguments.
import sys

print("published:", " ".join(sys.argv[1:]))
