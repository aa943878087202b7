# An app with a requirements.txt: the host installs it into a cached venv (from wheels shipped alongside).
import lit as L


class UsesDependency(L.LightningWork):
    def run(self) -> None:
        import litdemo

        print(f"litdemo says {litdemo.VALUE}")


app = L.LightningApp(UsesDependency())
