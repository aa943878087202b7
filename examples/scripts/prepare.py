# Step 1 of dag_scripts_app.py (traced): makes a small data set, y = 3x + 1 with noise, and leaves it as `rows`
# among its globals for its work to publish.
import random

rng = random.Random(0)
rows = []
for _ in range(200):
    x = rng.uniform(0, 10)
    rows.append((round(x, 4), round(3 * x + 1 + rng.gauss(0, 0.5), 4)))
print(f"made {len(rows)} rows")
