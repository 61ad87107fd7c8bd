"""The report's fixed prose: what holds for any run (how the data is prepared, what a layer or
a loss does, how the decoder generates digits). Every number stays with the sections that
compute it from the records."""

PREPROCESSING = [
    "- `astype('float32')`: the networks compute in 32-bit floats; integers would be converted at "
    "every step, and 64-bit floats would double the memory for no gain in accuracy.",
    "- `/ 255`: pixels in [0, 1]. Inputs of order 1 keep the first layer's sums, and so the "
    "gradients, in the range for which the default weight initialisations and learning rates "
    "are made; raw values up to 255 would saturate or blow up the first steps.",
    "- `to_categorical(y, 10)`: each label becomes a one-hot vector of 10 (a 3 is "
    "`[0,0,0,1,0,0,0,0,0,0]`), the form of the softmax output and of the target that "
    "categorical cross-entropy compares it with.",
    "- The layout each model needs: the MLP flattens each 28×28 image into 784 numbers (its "
    "`Flatten` layer), the CNN adds a channel axis (28×28×1), the autoencoder reads 784-vectors.",
    "",
    "The test set is also the validation set, as in the handout: the validation numbers below "
    "are test numbers, and choosing among runs by them is a choice made on the test set.",
    "",
]

MLP_UNITS = [
    "- **ReLU in the hidden layers** (max(0, x)): cheap, and its gradient is 1 wherever a unit "
    "is active, so the error signal reaches the first layer without shrinking, unlike sigmoid "
    "or tanh, which saturate. Stacked, the piecewise-linear units can bend the input space as "
    "much as the classes need.",
    "- **Softmax at the output** (e^{z_k} / Σ_j e^{z_j}): ten positive numbers that sum to 1, a "
    "probability for each digit, which is what the cross-entropy loss needs.",
    "",
]

CROSS_ENTROPY = [
    "The MLP minimises the categorical cross-entropy (`loss='categorical_crossentropy'`), averaged "
    "over the N images of a batch:",
    "",
    "$$L = -\\frac{1}{N} \\sum_{n=1}^{N} \\sum_{k=0}^{9} y_{nk} \\log p_{nk}$$",
    "",
    "where y_nk is 1 if image n is digit k (the one-hot label) and 0 otherwise, and p_nk is the "
    "softmax probability the network gives to digit k. With one-hot labels only the true class "
    "counts: the loss is the mean of −log(probability given to the right digit). It is 0 when "
    "the network is certain and right, log 10 ≈ 2.303 when it spreads its belief evenly over the "
    "ten digits, and grows without bound when it is certain and wrong.",
    "",
    "**Why it fits**: it is the negative log-likelihood of the labels under the network's "
    "predicted distribution, so minimising it is maximum-likelihood estimation for a 10-class "
    "problem; with softmax its gradient with respect to the output sums is simply p − y, which "
    "stays large while the prediction is wrong (a squared error on probabilities flattens out "
    "exactly when the network is confidently wrong). Accuracy, the number we report, has no "
    "useful gradient: it changes only when an image crosses a decision boundary.",
    "",
]

HINTON_GAP = ("**What may explain a gap** (what Hinton's number does not say): how his validation set was "
              "drawn and whether his {hinton} is one run or the best of many; his preprocessing (centring, "
              "scaling, any augmentation); the learning-rate schedule, momentum and number of epochs; the "
              "initialisation; whether weight decay covered all layers and biases; early stopping.")

NEW_LAYERS = {
    "RandomRotation": "turns each training digit by a random small angle; with the two below, new but "
                      "plausible digits every epoch (only while training: at test time they pass images through)",
    "RandomTranslation": "shifts each training digit by a few pixels",
    "RandomZoom": "zooms each training digit in or out a little",
    "BatchNormalization": "rescales each channel to zero mean and unit variance over the batch, then by a "
                          "learned scale and shift: steadier training at higher learning rates",
    "Activation": "the ReLU, as a layer of its own so that it comes after the batch norm",
    "Dropout": "sets that fraction of its inputs to 0 at each training step (none at test time), so that "
               "no unit can rely on another",
}

CONVOLUTION = ("- `Conv2D` (filters, kernel size): slides each of its small learned filters over the image and "
               "writes, at every position, how strongly the patch under it matches: one feature map per "
               "filter. The first layer's 5×5 filters learn edge and stroke detectors; the second combines "
               "them into parts of digits.")

CNN_FIGURES = (("cnn_mnist_model.png", "The lab CNN as this run built it."),
               ("cnn_mnist_accuracy.png", "The lab CNN's accuracy per epoch."),
               ("cnn_mnist_feature_maps.png", "One test digit's feature maps after each convolution "
                                              "and each pooling, all drawn to one pixel scale."),
               ("cnn_mnist_filters.png", "The first convolution's learned filters."),
               ("cnn_mnist_confusion.png", "Which digits the CNN takes for which, on the test set."),
               ("cnn_mnist_misclassified.png", "The test digits it got wrong with the most confidence."))

CONVOLUTIONS_SUIT_IMAGES = [
    "- **Locality**: a convolution's unit looks at a small patch (5×5 here); a dense unit looks at "
    "all 784 pixels at once and must learn from data that far-apart pixels rarely matter together.",
    "- **Weight sharing**: the same filter is applied at every position, so a stroke detector learned "
    "in one corner works everywhere, and the parameter count does not grow with the image.",
    "- **Translation**: shifting the digit shifts the feature maps (equivariance), and pooling "
    "then absorbs small shifts (approximate invariance); a dense layer sees a shifted digit as a new "
    "input and must learn it again.",
    "- **Structure**: the 2D neighbourhood of pixels is kept through the layers, where a dense "
    "layer starts by flattening it away.",
    "",
]

BINARY_CROSS_ENTROPY = [
    "**The loss**: binary cross-entropy per pixel, between the clean target x and the output x̂:",
    "",
    "$$L = -\\frac{1}{784} \\sum_{i=1}^{784} \\left[ x_i \\log \\hat{x}_i + (1 - x_i) \\log (1 - \\hat{x}_i) \\right]$$",
    "",
    "It treats each output pixel as the probability of ink and scores it against the clean pixel: "
    "the only way to lower it is to predict the clean image, not the noisy input. Its role is what "
    "makes this a denoiser rather than a copier.",
    "",
]

DENOISING_DISCUSSION = [
    "", "**Discussion**: a classifier trained on clean digits has never seen salt-and-pepper noise, "
    "so its accuracy falls as the noise grows; the autoencoder, trained on that corruption, hands "
    "it digits that look like its training data again, which pays wherever the digit is still "
    "there to recover and the denoiser has learned to recover it. Near noise 1 no digit is left "
    "(every pixel replaced), and every curve meets chance; at noise 0 a denoiser can only "
    "blur detail. Where the rows above help, and by how much, is this run's answer.", "",
]

GENERATING = [
    "The decoder is a model of its own (`decoder` in `denoise_autoencoder.py`): it maps any code of "
    "the latent size to a 28×28 image. To generate digits, choose codes and decode them; codes "
    "like the encoder's give digit-like images. The procedure:",
    "",
    "1. Encode the training digits to get their codes (the encoder alone).",
    "2. Choose new codes: (a) the mean code of each class; (b) points on the straight line between "
    "two test digits' codes; (c) random draws from a multivariate Gaussian with the training codes' "
    "mean and covariance, clipped at 0 (the encoder's ReLU never gives negative codes).",
    "3. Decode the chosen codes with the decoder alone.",
    "",
    "The class means give a typical, smoothed digit of each class; the walks show the decoder "
    "morphing one digit into another through in-between shapes; the random codes give new digits, "
    "mostly readable, some hybrids, since a denoising autoencoder's code space is not trained to be "
    "filled evenly (a variational autoencoder would be).",
    "",
]

GENERATED_FIGURES = (("generate_class_means.png", "Decoded from each class's mean code."),
                     ("generate_interpolations.png", "Decoded along the line between two test digits' codes."),
                     ("generate_random.png", "Decoded from random codes drawn from a Gaussian fitted to "
                                             "the training codes."))
