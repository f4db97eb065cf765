namespace Sandbox.Runtime.Templates;

/// <summary>
/// A saved template in its directory under the template root: the guest's device state (<see cref="StateFile"/>,
/// ~60 KB), its memory (<see cref="MemoryFile"/>, sparse: only what the booted guest touched), and
/// <see cref="ManifestFile"/>, written last, which makes the directory a template. <see cref="HoldersDirectory"/>
/// names the processes that hold the template's sealed memfd, so that clones share its pages.
/// </summary>
public sealed record VmTemplate(string Directory, string Key)
{
    public string StateFile => Path.Combine(Directory, "state");
    public string MemoryFile => Path.Combine(Directory, "memory");
    public string ManifestFile => Path.Combine(Directory, "manifest.txt");
    public string HoldersDirectory => Path.Combine(Directory, "holders");
    /// <summary>The sealed memfd's name: the key's first 16 hex digits.</summary>
    public string MemoryName => "sandbox-template-" + Key[..16];

    /// <summary>Whether the directory holds a complete template.</summary>
    public bool IsComplete => File.Exists(ManifestFile) && File.Exists(StateFile) && File.Exists(MemoryFile);
}
