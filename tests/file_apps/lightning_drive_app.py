# Lightning's Drive example ("share files between works"), as in its docs. Only the imports changed:
#   from lightning.app import LightningApp, LightningFlow, LightningWork  ->  from lit import ...
#   from lightning.app.storage import Drive                              ->  from lit.storage import Drive
import os

from lit import LightningApp, LightningFlow, LightningWork
from lit.storage import Drive


class Work_1(LightningWork):
    def __init__(self):
        super().__init__()
        self.drive = Drive("lit://this_drive_id")

    def run(self):
        # 1. Create a file.
        with open("a.txt", "w") as f:
            f.write("Hello World !")

        # 2. Put the file into the drive.
        self.drive.put("a.txt")

        # 3. Delete the file locally.
        os.remove("a.txt")


class Work_2(LightningWork):
    def __init__(self):
        super().__init__()
        self.drive = Drive("lit://this_drive_id")

    def run(self):
        print(self.drive.list("."))  # Prints ["a.txt"]

        print(os.path.exists("a.txt"))  # Prints False

        self.drive.get("a.txt")  # Transfer the file from this drive to the local filesystem.

        print(os.path.exists("a.txt"))  # Prints True

        with open("a.txt") as f:
            print(f.readlines()[0])  # Prints Hello World !


class Flow(LightningFlow):
    def __init__(self):
        super().__init__()
        self.work_1 = Work_1()
        self.work_2 = Work_2()

    def run(self):
        self.work_1.run()
        self.work_2.run()
        self.stop("done")


app = LightningApp(Flow())
