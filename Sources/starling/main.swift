import StarlingNode
print("starling")
