import KoshApp
print("kosh")
