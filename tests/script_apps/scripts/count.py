# Prints its arguments and a few lines; exits with the code EXIT_CODE names (0 if unset).
import os
import sys

print("args:", " ".join(sys.argv[1:]), flush=True)
for i in range(30):
    print(f"line {i}", flush=True)
print(f"GREETING={os.environ.get('GREETING', '')}", flush=True)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
