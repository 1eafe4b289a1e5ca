import matplotlib.pyplot as plt
from sklearn.datasets import load_digits
import softmaxkit as sk

X, y = load_digits(return_X_y=True)
model = sk.SoftmaxRegression(C=1.0).fit(X / 16, y)
fig, axes = plt.subplots(1, 10, figsize=(8, 1.4))
for digit, ax in enumerate(axes):
    ax.imshow(model.coef_[digit].reshape(8, 8), cmap="RdBu_r")
    ax.set_title(str(digit))
    ax.axis("off")
fig.suptitle("coef_ of SoftmaxRegression on the digits: one row of W per class")
