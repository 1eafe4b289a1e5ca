import numpy as np
import matplotlib.pyplot as plt
import softmaxkit as sk

x = np.array([1.0, 2.0, 3.0, 0.5, -1.0])
J = sk.softmax_jacobian(x)
fig, ax = plt.subplots(figsize=(3.6, 3.2))
image = ax.imshow(J, cmap="RdBu_r", vmin=-np.abs(J).max(), vmax=np.abs(J).max())
ax.set_title("softmax_jacobian([1, 2, 3, 0.5, -1])")
ax.set_xlabel("input j")
ax.set_ylabel("output i")
fig.colorbar(image)
