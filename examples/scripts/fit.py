# Step 2 of dag_scripts_app.py (traced): fits y = a*x + b by least squares on ROWS, a global the work passes in,
# and leaves `model` among its globals for the work to publish.
rows = ROWS  # noqa: F821 - given by the work's run(ROWS=...)
n = len(rows)
mean_x = sum(x for x, _ in rows) / n
mean_y = sum(y for _, y in rows) / n
a = sum((x - mean_x) * (y - mean_y) for x, y in rows) / sum((x - mean_x) ** 2 for x, _ in rows)
b = mean_y - a * mean_x
model = {"a": round(a, 3), "b": round(b, 3)}
print(f"fitted y = {model['a']}x + {model['b']} on {n} rows")
