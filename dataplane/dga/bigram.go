package dga

// rareBigram[a] has bit b set when the letter pair a,b (a..z = 0..25)
// occurred fewer than 5 times in 141k letter pairs of English prose (the Go
// specification and memory model, $GOROOT/doc, tags stripped); generated
// once by a throwaway script: frequent pairs are what pronounceable names
// are made of, random strings are full of rare ones.
var rareBigram = [26]uint32{
	0x2014291, // a: aehjoqz
	0x2e1b6ee, // b: bcdfghjkmnpqvwxz
	0x2c1b26a, // c: bdfgjmnpqwxz
	0x2c996c6, // d: bcghjkmpqtwxz
	0x2100602, // e: bjkuz
	0x2e1a6c6, // f: bcghjknpqvwxz
	0x3e19666, // g: bcfgjkmpqvwxyz
	0x3e1aeaa, // h: bdfhjklnpqvwxyz
	0x1500380, // i: hijuwy
	0x3efbffe, // j: bcdefghijklmnpqrstvwxyz
	0x3fbdeee, // k: bcdfghjklmopqrtuvwxyz
	0x2819246, // l: bcgjmpqxz
	0x2c32ee4, // m: cfghjklnqrwxz
	0x2c30280, // n: hjqrwxz
	0x3810280, // o: hjqxyz
	0x2e1366e, // p: bcdfgjkmnqvwxz
	0x3edffff, // q: abcdefghijklmnopqstvwxyz
	0x2810200, // r: jqxz
	0x2a02242, // s: bgjnvxz
	0x2812642, // t: bgjknqxz
	0x3f10680, // u: hjkquvwxyz
	0x3fbbeee, // v: bcdfghjklmnpqrtuvwxyz
	0x3f9866e, // w: bcdfgjkpqtuvwxyz
	0x3f77ec8, // x: dghjklmnoqrsuvwxyz
	0x3b106e9, // y: adfghjkquvxyz
	0x3ffbeee, // z: bcdfghjklmnpqrstuvwxyz
}
