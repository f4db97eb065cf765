using System.Text;

namespace Sandbox.Fuzzing;

/// <summary>
/// Values that break careless parsers: empty, huge, negative, boundary numbers, path tricks ("..", absolute paths,
/// NUL, newlines), non-ASCII and invalid UTF-16, and plain random text. Each draw picks one at random.
/// </summary>
public static class HostileValues
{
    private static readonly string[] Strings =
    [
        "", " ", ".", "..", "../..", "../../../../etc/passwd", "/", "/etc/shadow", "/proc/self/root", "a/../../b",
        "with\0nul", "line\nbreak", "tab\there", "-", "--", "-h", "--help", "=", "a=b", "%s%s%n", "{}", "[]", "null",
        "\u00e9t\u00e9", "\ud83d\ude00", "\ud800", "unix:///nonexistent.sock", "vsock://4294967295:1", "9223372036854775808",
        "-1", "0", "4294967296", "NaN", "true", "sha256:", "c1", "bind", "overlay", "tmpfs", "cgroup2", "proc",
    ];

    private static readonly long[] Numbers =
    [
        0, 1, -1, 2, 63, 64, 65, 255, 256, 4095, 4096, 65535, 65536, int.MaxValue, int.MinValue, (long)uint.MaxValue,
        long.MaxValue, long.MinValue, 1L << 40, -(1L << 40),
    ];

    public static string String(Random random) => random.Next(6) switch
    {
        0 => Strings[random.Next(Strings.Length)] + Strings[random.Next(Strings.Length)],
        1 => new string((char)random.Next(32, 127), random.Next(1, 3) == 1 ? random.Next(1, 300) : random.Next(4096, 70_000)),
        2 => RandomText(random, random.Next(0, 40)),
        _ => Strings[random.Next(Strings.Length)],
    };

    public static long Number(Random random) => random.Next(4) == 0 ? random.NextInt64(long.MinValue, long.MaxValue) : Numbers[random.Next(Numbers.Length)];

    public static byte[] Bytes(Random random)
    {
        int length = random.Next(5) switch
        {
            0 => 0,
            1 => random.Next(1, 16),
            2 => random.Next(16, 1024),
            3 => Encoding.UTF8.GetByteCount(String(random)),
            _ => random.Next(1024, 200_000),
        };
        var bytes = new byte[length];
        random.NextBytes(bytes);
        return bytes;
    }

    private static string RandomText(Random random, int length)
    {
        var builder = new StringBuilder(length);
        for (int i = 0; i < length; i++)
            builder.Append((char)random.Next(0, 0x3000));
        return builder.ToString();
    }
}
