namespace Sandbox.Shim.Start;

/// <summary>&lt;bundle&gt;/address: the daemon's ttrpc address, which containerd 1.6/1.7 read to reconnect.</summary>
public static class AddressFile
{
    public const string Name = "address";

    /// <summary>Writes the address atomically (a temporary file, then rename), without a newline.</summary>
    public static void Write(string bundle, string address)
    {
        string final = Path.Combine(bundle, Name);
        string temporary = Path.Combine(bundle, "." + Name);
        File.WriteAllText(temporary, address);
        File.Move(temporary, final, overwrite: true);
    }

    public static string? Read(string bundle)
    {
        try
        {
            return File.ReadAllText(Path.Combine(bundle, Name)).Trim();
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            return null;
        }
    }
}
