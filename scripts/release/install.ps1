<#
.SYNOPSIS
Installs bbagent on Windows from a release directory made by scripts/release/make-release.

.DESCRIPTION
Downloads bbagent-win-x64.exe and SHA256SUMS from the base URL (Invoke-WebRequest), checks the SHA-256
(Get-FileHash), and installs the executable as <Prefix>\bbagent.exe. Nothing is installed when the download does
not match SHA256SUMS; the download is removed. Then, if asked: `bbagent create-worker <BaseDir> <WorkerArgs>` and
`bbagent service install --user <User> <BaseDir>` (the account's password comes from BBAGENT_SERVICE_PASSWORD, as
for bbagent service install itself). Windows PowerShell 5.1 or PowerShell 7; run it from an elevated prompt for
the default Prefix and for -Service.

.EXAMPLE
powershell -ExecutionPolicy Bypass -File install.ps1 -BaseUrl https://releases.example.org/bbagent

.EXAMPLE
& ([scriptblock]::Create((Invoke-WebRequest -UseBasicParsing https://releases.example.org/bbagent/install.ps1).Content)) -BaseUrl https://releases.example.org/bbagent -BaseDir C:\bbagent\w1 -User .\bbagent -Service -WorkerArgs buildmaster.example.org:9989,w1,PASSWORD
#>
[CmdletBinding()]
param(
  [string]$BaseUrl = '', # make-release --base-url fills this in; else -BaseUrl is required
  [string]$Prefix = (Join-Path $env:ProgramFiles 'bbagent'),
  [string]$Name = 'bbagent.exe',
  [string]$Target = '',
  [string]$BaseDir = '',
  [string]$User = '',
  [switch]$Service,
  [string[]]$ServiceArgs = @(),
  [switch]$AddToPath,
  [Parameter(ValueFromRemainingArguments = $true)]
  [string[]]$WorkerArgs = @()
)

Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue' # Invoke-WebRequest's progress bar makes Windows PowerShell 5.1 slow

# A throw, not exit: run as a script block (the one-liner), exit would close the caller's PowerShell.
# Run with -File, the uncaught error exits with code 1.
function Fail([string]$Message) {
  throw "install.ps1: $Message"
}

# --- check the arguments before downloading anything
if ($BaseUrl -eq '') { Fail 'no -BaseUrl: give the URL the release directory is served at' }
if ($BaseUrl -notmatch '^https?://.') { Fail "-BaseUrl '$BaseUrl': expected an http:// or https:// URL" }
$BaseUrl = $BaseUrl.TrimEnd('/')
if ($Name -eq '' -or $Name -match '[\\/]') { Fail "-Name '$Name': expected a file name" }
if (($WorkerArgs.Count -gt 0 -or $Service) -and $BaseDir -eq '') { Fail '-WorkerArgs (create-worker) and -Service need -BaseDir DIR' }
if ($Service -and $User -eq '') { Fail '-Service needs -User ACCOUNT (a standard account such as .\bbagent)' }

if ($Target -eq '') {
  # There is no Windows arm64 build: Windows 11 on arm64 runs the x64 one under emulation.
  switch ($env:PROCESSOR_ARCHITECTURE) {
    'AMD64' { $Target = 'win-x64' }
    'ARM64' { $Target = 'win-x64'; Write-Warning 'no arm64 build for Windows: installing win-x64 (runs under emulation)' }
    default { Fail "no bbagent executable for the CPU '$($env:PROCESSOR_ARCHITECTURE)'" }
  }
}
if ($Target -ne 'win-x64') { Fail "-Target '$Target': expected win-x64" }
$File = "bbagent-$Target.exe"

# Windows PowerShell 5.1 may not offer TLS 1.2 by default.
if ($PSVersionTable.PSVersion.Major -lt 6) {
  [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
}

$Tmp = Join-Path ([IO.Path]::GetTempPath()) ("bbagent-install-" + [guid]::NewGuid().ToString('N'))
New-Item -ItemType Directory -Path $Tmp | Out-Null
$New = $null
try {
  # --- download and check
  $Sums = Join-Path $Tmp 'SHA256SUMS'
  try {
    Invoke-WebRequest -UseBasicParsing -Uri "$BaseUrl/SHA256SUMS" -OutFile $Sums
  } catch {
    Fail "cannot download $BaseUrl/SHA256SUMS ($($_.Exception.Message)): is -BaseUrl right and the server reachable?"
  }
  $Expected = $null
  foreach ($Line in Get-Content -LiteralPath $Sums) {
    $Parts = $Line -split '\s+', 2
    if ($Parts.Count -eq 2 -and ($Parts[1] -eq $File -or $Parts[1] -eq "*$File")) { $Expected = $Parts[0].ToLowerInvariant(); break }
  }
  if ($null -eq $Expected) { Fail "$BaseUrl/SHA256SUMS has no line for $File" }
  if ($Expected -notmatch '^[0-9a-f]{64}$') { Fail "$BaseUrl/SHA256SUMS: the line for $File is not a SHA-256 ('$Expected')" }

  $Download = Join-Path $Tmp $File
  Write-Host "install.ps1: downloading $BaseUrl/$File"
  try {
    Invoke-WebRequest -UseBasicParsing -Uri "$BaseUrl/$File" -OutFile $Download
  } catch {
    Fail "cannot download $BaseUrl/$File ($($_.Exception.Message))"
  }
  $Actual = (Get-FileHash -LiteralPath $Download -Algorithm SHA256).Hash.ToLowerInvariant()
  if ($Actual -ne $Expected) {
    Remove-Item -LiteralPath $Download -Force
    Fail "checksum mismatch for ${File}: SHA256SUMS says $Expected, the download is $Actual. The download was removed and nothing was installed."
  }

  # --- install: copied next to its place, run once there, then moved over it
  try {
    New-Item -ItemType Directory -Force -Path $Prefix | Out-Null
    $New = Join-Path $Prefix ".$Name.new.$PID.exe"
    Copy-Item -LiteralPath $Download -Destination $New -Force
  } catch {
    Fail "cannot write to ${Prefix}: run from an elevated prompt or choose -Prefix ($($_.Exception.Message))"
  }
  # Native stderr under 'Stop' would throw in Windows PowerShell 5.1: read it as text.
  $ErrorActionPreference = 'Continue'
  $Version = (& $New --version 2>&1 | ForEach-Object { "$_" }) -join ' '
  $ErrorActionPreference = 'Stop'
  if ($LASTEXITCODE -ne 0) { Fail "the downloaded $File does not run on this machine ($New --version: $Version); nothing was installed" }
  $Dest = Join-Path $Prefix $Name
  try {
    Move-Item -LiteralPath $New -Destination $Dest -Force
  } catch {
    Fail "cannot replace $Dest (is bbagent running from it? stop the service first): $($_.Exception.Message)"
  }
  $New = $null
  Write-Host "install.ps1: installed $Dest ($Version, sha256 $Expected)"

  if ($AddToPath) {
    $MachinePath = [Environment]::GetEnvironmentVariable('Path', 'Machine')
    if (($MachinePath -split ';') -notcontains $Prefix) {
      [Environment]::SetEnvironmentVariable('Path', "$MachinePath;$Prefix", 'Machine')
      Write-Host "install.ps1: added $Prefix to the machine's Path (new shells see it)"
    }
  }

  # --- the service wrapper (WinSW), shipped beside bbagent.exe: `bbagent service install` copies it from there
  $Wrapper = 'winsw.exe'
  $WExpected = $null
  foreach ($Line in Get-Content -LiteralPath $Sums) {
    $Parts = $Line -split '\s+', 2
    if ($Parts.Count -eq 2 -and ($Parts[1] -eq $Wrapper -or $Parts[1] -eq "*$Wrapper")) { $WExpected = $Parts[0].ToLowerInvariant(); break }
  }
  if ($null -eq $WExpected) {
    Write-Host "install.ps1: $BaseUrl/SHA256SUMS has no line for ${Wrapper}: 'bbagent service install' will need --winsw PATH"
  } else {
    $WDownload = Join-Path $Tmp $Wrapper
    try {
      Invoke-WebRequest -UseBasicParsing -Uri "$BaseUrl/$Wrapper" -OutFile $WDownload
    } catch {
      Fail "cannot download $BaseUrl/$Wrapper ($($_.Exception.Message)); bbagent itself is installed: $Dest"
    }
    $WActual = (Get-FileHash -LiteralPath $WDownload -Algorithm SHA256).Hash.ToLowerInvariant()
    if ($WActual -ne $WExpected) {
      Remove-Item -LiteralPath $WDownload -Force
      Fail "checksum mismatch for ${Wrapper}: SHA256SUMS says $WExpected, the download is $WActual. It was removed; bbagent itself is installed: $Dest"
    }
    Copy-Item -LiteralPath $WDownload -Destination (Join-Path $Prefix $Wrapper) -Force
    Write-Host "install.ps1: installed $(Join-Path $Prefix $Wrapper) (the service wrapper, sha256 $WExpected)"
  }

  # --- worker and service
  if ($WorkerArgs.Count -gt 0) {
    & $Dest create-worker $BaseDir @WorkerArgs
    if ($LASTEXITCODE -ne 0) { Fail "bbagent create-worker $BaseDir failed (bbagent itself is installed: $Dest)" }
  }
  if ($Service) {
    & $Dest service install --user $User @ServiceArgs $BaseDir
    if ($LASTEXITCODE -ne 0) { Fail "bbagent service install $BaseDir failed (bbagent itself is installed: $Dest)" }
  }
} finally {
  if ($null -ne $New -and (Test-Path -LiteralPath $New)) { Remove-Item -LiteralPath $New -Force }
  Remove-Item -LiteralPath $Tmp -Recurse -Force -ErrorAction SilentlyContinue
}
