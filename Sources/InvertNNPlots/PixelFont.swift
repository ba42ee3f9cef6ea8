/// A 3×5-pixel bitmap font for the labels of plots (digits, punctuation, signs and the
/// lower-case letters), so that pictures carry their tick labels and legends without a font
/// library. Each glyph is five rows of three bits, the high bit on the left.
enum PixelFont {
    static let glyphWidth = 3, glyphHeight = 5

    /// The rows of `character`'s glyph, or a blank for a character the font lacks (upper case
    /// is drawn as lower case).
    static func glyph(_ character: Character) -> [UInt8] {
        let c = Character(character.lowercased())
        return glyphs[c] ?? [0, 0, 0, 0, 0]
    }

    private static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 2, 2], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], "+": [0, 2, 7, 2, 0], "/": [1, 1, 2, 4, 4], ":": [0, 2, 0, 2, 0],
        "(": [1, 2, 2, 2, 1], ")": [4, 2, 2, 2, 4], " ": [0, 0, 0, 0, 0], "_": [0, 0, 0, 0, 7],
        ",": [0, 0, 0, 2, 4], "'": [2, 2, 0, 0, 0], "\"": [5, 5, 0, 0, 0], "=": [0, 7, 0, 7, 0], "%": [5, 1, 2, 4, 5],
        "[": [3, 2, 2, 2, 3], "]": [6, 2, 2, 2, 6], "*": [0, 5, 2, 5, 0], "<": [1, 2, 4, 2, 1], ">": [4, 2, 1, 2, 4],
        "|": [2, 2, 2, 2, 2], "#": [5, 7, 5, 7, 5], "!": [2, 2, 2, 0, 2], "?": [7, 1, 2, 0, 2], ";": [0, 2, 0, 2, 4],
        "a": [0, 6, 1, 7, 7], "b": [4, 4, 7, 5, 7], "c": [0, 7, 4, 4, 7], "d": [1, 1, 7, 5, 7], "e": [7, 5, 7, 4, 7],
        "f": [3, 4, 7, 4, 4], "g": [7, 5, 7, 1, 7], "h": [4, 4, 7, 5, 5], "i": [2, 0, 2, 2, 2], "j": [1, 0, 1, 5, 7],
        "k": [4, 5, 6, 5, 5], "l": [2, 2, 2, 2, 3], "m": [0, 7, 7, 5, 5], "n": [0, 6, 5, 5, 5], "o": [0, 7, 5, 5, 7],
        "p": [0, 7, 5, 7, 4], "q": [7, 5, 7, 1, 1], "r": [0, 7, 4, 4, 4], "s": [0, 3, 6, 1, 6], "t": [4, 7, 4, 4, 3],
        "u": [0, 5, 5, 5, 7], "v": [0, 5, 5, 5, 2], "w": [0, 5, 7, 7, 7], "x": [0, 5, 2, 5, 5], "y": [5, 5, 7, 1, 7],
        "z": [7, 1, 2, 4, 7],
    ]
}

extension GreyscaleImage {
    /// Draws `text` with its top-left corner at (`x`, `y`), each font pixel a `scale × scale`
    /// block of `value`; pixels outside the image are skipped.
    mutating func drawText(_ text: String, x: Int, y: Int, scale: Int = 2, value: UInt8 = 0) {
        var left = x
        for character in text {
            let rows = PixelFont.glyph(character)
            for (r, bits) in rows.enumerated() {
                for c in 0..<PixelFont.glyphWidth where bits & (4 >> c) != 0 {
                    fill(x: left + c * scale, y: y + r * scale, width: scale, height: scale, value: value)
                }
            }
            left += (PixelFont.glyphWidth + 1) * scale
        }
    }

    /// The width in pixels of `text` drawn at `scale`.
    static func textWidth(_ text: String, scale: Int = 2) -> Int { max(0, text.count * (PixelFont.glyphWidth + 1) * scale - scale) }

    /// Fills a rectangle, clipped to the image (a rectangle wholly outside, or empty, fills nothing).
    mutating func fill(x: Int, y: Int, width w: Int, height h: Int, value: UInt8) {
        let rows = max(0, y)..<max(max(0, y), min(height, y + h))
        let columns = max(0, x)..<max(max(0, x), min(width, x + w))
        for row in rows {
            for column in columns { pixels[row * width + column] = value }
        }
    }
}
