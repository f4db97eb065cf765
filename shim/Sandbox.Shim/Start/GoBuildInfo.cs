using System.Buffers.Binary;
using System.Text;

namespace Sandbox.Shim.Start;

/// <summary>
/// The main package path a Go binary was built from, read from its ELF <c>.go.buildinfo</c> section (Go 1.18+ stores
/// the version and module strings inline there, each prefixed by its varint length). Reads a few KiB: the section
/// headers, their names and the section itself. Null when the file is not such a binary.
/// </summary>
public static class GoBuildInfo
{
    private static readonly byte[] Magic = [0xff, .. " Go buildinf:"u8];
    private static readonly byte[] ElfMagic = { 0x7f, (byte)'E', (byte)'L', (byte)'F' };
    private const int InlineStringsFlag = 0x2;
    private const int HeaderSize = 32;
    private const int SentinelSize = 16;

    /// <summary>"github.com/containerd/containerd/v2/cmd/containerd", or null.</summary>
    public static string? MainPackageOf(string binaryPath)
    {
        try
        {
            using var file = File.OpenRead(binaryPath);
            var section = ReadSection(file, ".go.buildinfo");
            return section is null ? null : MainPackageIn(section);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The "path" line of the module information in a .go.buildinfo section's bytes.</summary>
    public static string? MainPackageIn(ReadOnlySpan<byte> section)
    {
        if (section.Length < HeaderSize || !section[..Magic.Length].SequenceEqual(Magic) || (section[15] & InlineStringsFlag) == 0)
            return null;
        var rest = section[HeaderSize..];
        if (!TryReadBytes(ref rest, out _) || !TryReadBytes(ref rest, out var moduleBytes))
            return null;
        // The linker wraps the module information in two 16-byte sentinels (runtime/debug's modinfo); the unit tests
        // and older toolchains may not.
        if (moduleBytes.Length >= 2 * SentinelSize && moduleBytes[SentinelSize..].StartsWith("path\t"u8))
            moduleBytes = moduleBytes[SentinelSize..^SentinelSize];
        string modules = Encoding.UTF8.GetString(moduleBytes);
        foreach (var line in modules.Split('\n'))
        {
            if (line.StartsWith("path\t", StringComparison.Ordinal))
                return line["path\t".Length..];
        }
        return null;
    }

    private static bool TryReadBytes(ref ReadOnlySpan<byte> data, out ReadOnlySpan<byte> value)
    {
        value = default;
        ulong length = 0;
        int shift = 0, used = 0;
        while (true)
        {
            if (used >= data.Length || shift > 28)
                return false;
            byte b = data[used++];
            length |= (ulong)(b & 0x7f) << shift;
            if ((b & 0x80) == 0)
                break;
            shift += 7;
        }
        if ((ulong)(data.Length - used) < length)
            return false;
        value = data.Slice(used, (int)length);
        data = data[(used + (int)length)..];
        return true;
    }

    /// <summary>The bytes of the named section of an ELF64 little-endian file, or null.</summary>
    private static byte[]? ReadSection(FileStream file, string name)
    {
        var header = ReadAt(file, 0, 64);
        if (header is null || !header.AsSpan(0, 4).SequenceEqual(ElfMagic) || header[4] != 2 /* 64-bit */ || header[5] != 1 /* little-endian */)
            return null;
        long sectionTable = (long)BinaryPrimitives.ReadUInt64LittleEndian(header.AsSpan(0x28));
        int entrySize = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3a));
        int count = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3c));
        int namesIndex = BinaryPrimitives.ReadUInt16LittleEndian(header.AsSpan(0x3e));
        if (entrySize < 64 || count == 0 || namesIndex >= count || count > 4096)
            return null;
        var table = ReadAt(file, sectionTable, entrySize * count);
        if (table is null)
            return null;
        (long Offset, long Size) Section(int index)
        {
            var entry = table.AsSpan(index * entrySize, entrySize);
            return ((long)BinaryPrimitives.ReadUInt64LittleEndian(entry[0x18..]), (long)BinaryPrimitives.ReadUInt64LittleEndian(entry[0x20..]));
        }
        var (namesOffset, namesSize) = Section(namesIndex);
        if (namesSize > 1 << 20 || ReadAt(file, namesOffset, (int)namesSize) is not { } names)
            return null;
        byte[] wanted = Encoding.ASCII.GetBytes(name + "\0");
        for (int i = 0; i < count; i++)
        {
            int nameOffset = (int)BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(i * entrySize));
            if (nameOffset + wanted.Length > names.Length || !names.AsSpan(nameOffset, wanted.Length).SequenceEqual(wanted))
                continue;
            var (offset, size) = Section(i);
            return size is > 0 and <= 1 << 16 ? ReadAt(file, offset, (int)size) : null;
        }
        return null;
    }

    private static byte[]? ReadAt(FileStream file, long offset, int length)
    {
        if (offset < 0 || offset + length > file.Length)
            return null;
        var buffer = new byte[length];
        file.Position = offset;
        file.ReadExactly(buffer);
        return buffer;
    }
}
